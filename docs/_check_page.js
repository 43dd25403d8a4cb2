// Measures one rendered page for docs/check_site.py (evaluated by Playwright; returns plain data).
async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const article = document.querySelector("article.bd-article") || document.body;

  // MathJax is on the page only where there is maths; wait until it has typeset everything.
  const mathSource = document.querySelectorAll("span.math, div.math").length;
  if (mathSource) {
    for (let t = 0; t < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); t++) {
      await sleep(100);
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await MathJax.startup.promise;
    }
  }
  await Promise.all(
    [...document.images].map((img) =>
      img.complete ? null : new Promise((done) => { img.onload = img.onerror = done; })),
  );

  const short = (text) => text.replace(/\s+/g, " ").trim().slice(0, 90);
  const visible = (el) => el.getClientRects().length > 0;

  // TeX that MathJax left as text (outside code, where backslashes are legitimate).
  const texPattern = /\\\(|\\\[|\\begin\{|\\frac|\\operatorname|\\mathbb|\\mathcal|\\sum_/;
  const rawTex = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("pre, code, kbd, samp, script, style, mjx-container")) continue;
    if (texPattern.test(node.textContent)) rawTex.push(short(node.textContent));
  }

  // Blocks that need scrolling inside the column or stick out of it.
  const column = article.getBoundingClientRect();
  const overflowing = [];
  const blocks = article.querySelectorAll(
    "pre, div.math, mjx-container[display='true'], .pst-scrollable-table-container, img");
  for (const el of blocks) {
    if (!visible(el)) continue;
    const box = el.getBoundingClientRect();
    const scrolls = el.scrollWidth > el.clientWidth + 1 && el.tagName !== "IMG";
    if (scrolls || box.right > column.right + 1 || box.left < column.left - 1) {
      const text = el.tagName === "IMG" ? el.getAttribute("src") : el.textContent;
      const longest = text.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      overflowing.push(
        `${el.tagName.toLowerCase()} (${el.scrollWidth} px in ${el.clientWidth} px): ` +
        short(longest));
    }
  }

  const sectionNav = document.querySelector("nav.bd-docs-nav");
  const topNav = [...document.querySelectorAll(".bd-header ul.navbar-nav > li > a.nav-link")]
    .filter(visible).map((a) => a.textContent.trim());
  const spec = article.innerText.match(/[^\n]{0,40}\bSPEC\b(\s+section|\.md|'s)[^\n]{0,20}/g) || [];

  return {
    mathCount: document.querySelectorAll("mjx-container").length,
    mathSource,
    rawTex,
    mathErrors: [...document.querySelectorAll("mjx-merror")].map((e) => short(e.textContent)),
    overflowing,
    brokenImages: [...article.querySelectorAll("img")]
      .filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.src),
    emptySectionNav: !!sectionNav && visible(sectionNav) && !sectionNav.querySelector("li"),
    topNav,
    specPointers: spec.map(short),
    codeBlocks: article.querySelectorAll("div.highlight pre").length,
    copyButtons: article.querySelectorAll("div.highlight button.copybtn").length,
    pageWidth: document.documentElement.scrollWidth,
    windowWidth: window.innerWidth,
  };
}

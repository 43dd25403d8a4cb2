"""Framework backends of diveq: one subpackage per framework, selected by import path."""

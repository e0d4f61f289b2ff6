"""The compiled execution path: queries planned once and answered from rows directly."""

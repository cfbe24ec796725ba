"""resetlens: who sent that TCP reset, why, and what to fix."""

__version__ = "0.1.0"

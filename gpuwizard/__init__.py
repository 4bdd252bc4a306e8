"""gpuwizard: from an NVIDIA card to HAMi-shared pods."""
__version__ = "0.1.0"

"""Example profiles shipped with ibb (one TOML file per utility block)."""

from pathlib import Path

SHIPPED_DIR = Path(__file__).parent

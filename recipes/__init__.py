"""Recipe files (*.toml), installed as package data so that an installed tool finds them."""

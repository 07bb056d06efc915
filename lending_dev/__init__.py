"""Dev tooling, never shipped in the wheel: the partner sandbox, the demo seeds, the dev
secrets and the `lending dev` supervisor. Importable from a source checkout (the editable
install of `uv sync` puts the repository root on sys.path)."""

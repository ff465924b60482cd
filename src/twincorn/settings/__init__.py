"""Every setting of `twincorn serve`, declared once, grouped by what it governs.

Each module holds one frozen dataclass of fields made by
`twincorn.settings.declare.setting`; `twincorn.config.Config` inherits them
all, in the order of `docs/settings.md`. A new setting goes in the group it
belongs to (or a new group, added to Config's bases)."""

"""Dataset adapters: pure index builders from an on-disk layout to :class:`~zsadbench.types.Sample` lists."""

"""What runs inside a session, beside the hub's own code. One room per kind:

- `kernel/` (`aifw.extensions.kernel`): helpers that notebooks import in their kernel.
"""

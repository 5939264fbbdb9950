"""VoxDesk engine: asyncio + numpy, no Qt."""

__version__ = "0.1.0"

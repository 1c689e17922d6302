"""The registry type lives with the model code (the bottom of the project); the harness uses the same one."""
from lightning_modules.registry import Registry, UnknownName

__all__ = ["Registry", "UnknownName"]

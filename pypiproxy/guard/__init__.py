"""The supply-chain guard: --min-age, --block, --allow-only and PEP 792 quarantine, in front of the caches."""

from .policy import Guard, Rules
from .rules import BlockRule, RuleError, WatchedFile, load, parse_allow, parse_block
from .tier import Clearance, GuardedFiles, GuardedPages

__all__ = [
    "BlockRule", "Clearance", "Guard", "GuardedFiles", "GuardedPages", "RuleError", "Rules", "WatchedFile", "load",
    "parse_allow", "parse_block",
]

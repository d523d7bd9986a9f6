"""The taxonomy's rules: name folding (names), the one tag resolver (resolver), advisory locks (locks)."""

from annotation.taxonomy.locks import TAXONOMY_LOCK_KEY, lock_taxonomy
from annotation.taxonomy.names import (
    TAG_NAME_MAX_LENGTH,
    TagNameError,
    clean_tag_display_name,
    normalize_tag_name,
)
from annotation.taxonomy.resolver import TagResolver

__all__ = [
    "TAG_NAME_MAX_LENGTH",
    "TAXONOMY_LOCK_KEY",
    "TagNameError",
    "TagResolver",
    "clean_tag_display_name",
    "lock_taxonomy",
    "normalize_tag_name",
]

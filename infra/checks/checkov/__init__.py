"""ferry's own checkov checks (CKV_FERRY_*); checkov loads a directory only with an __init__.py."""

"""Shared test setup."""

import os

# litellm fetches its model-cost map from the internet at import unless told otherwise; tests
# never reach the network. Set before any test module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

"""The libraries this instrumentation patches, as requirement strings.

``BaseInstrumentor`` checks ``instrumentation_dependencies()`` before instrumenting and refuses
when a listed package is missing. l0 patches *whichever* of OpenAI and LiteLLM is installed, so
``L0Instrumentor.instrumentation_dependencies()`` returns nothing and each library is checked
against its line here when it is patched (see ``L0Instrumentor._instrument``).
"""

from __future__ import annotations

_instruments_openai = "openai >= 1.30"
# 1.107.0 was a compromised release: never patch it.
_instruments_litellm = "litellm >= 1.108, != 1.107.0"

_instruments = (_instruments_openai,)
"""The contrib convention's name: what the instrumentation is *for*. Optional: LiteLLM."""

_instruments_any = (_instruments_openai, _instruments_litellm)
"""Every library this instrumentation can patch; at least one should be installed."""

_supports_metrics = True

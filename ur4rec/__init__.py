"""UR4Rec: multimodal sequential recommendation with SASRec, a mixture-of-experts retriever and LLM texts."""

__version__ = "0.1.0"

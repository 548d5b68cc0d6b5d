"""The knowledge base: article ingest, a vector-index port, and hybrid retrieval.

``kb.ingest`` parses, validates, chunks and embeds help articles, detects conflicting
versions and near-duplicates, indexes the passages and records one ``KnowledgeIngested``
event per article version. ``kb.retrieve.Retriever`` answers a question with the best
passages (vector + BM25, one hit per article) and a calibrated confidence.
"""

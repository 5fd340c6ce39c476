"""rr: reasoning rerankers distilled from a teacher LLM, orchestrated as Dagster assets."""

-- A collection's queries, for retrieval.
SELECT query_id, text FROM {{ ref('queries') }} WHERE collection = $collection ORDER BY query_id

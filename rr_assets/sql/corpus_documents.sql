-- A collection's documents, for indexing.
SELECT doc_id, title, text FROM {{ ref('corpus') }} WHERE collection = $collection ORDER BY doc_id

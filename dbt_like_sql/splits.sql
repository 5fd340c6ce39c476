-- Training and evaluation queries never overlap: a stable hash of (collection, query id) puts
-- each query on one side, so the split does not move when queries are added.
SELECT
    collection,
    query_id,
    CASE WHEN md5_number(collection || ':' || query_id) % 100 < $eval_percent THEN 'eval' ELSE 'train' END AS split
FROM {{ ref('queries') }}
WHERE collection = $collection

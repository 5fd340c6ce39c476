-- The teacher's listwise orders of each training query (JSON arrays of document ids, best first),
-- for the listwise loss: one row per distinct final order. A live teacher's sliding windows give
-- one final order per query; imported answers give one per answer (a query's lists, and several
-- teachers' answers on one list, each train). Queries with a window that did not parse are left
-- out; repaired permutations are kept and counted.
WITH usable AS (
    SELECT r.*
    FROM {{ ref('teacher_rankings') }} AS r
    JOIN {{ ref('splits') }} AS s ON s.collection = r.collection AND s.query_id = r.query_id
    WHERE r.collection = $collection AND r.prompt_variant = $prompt_variant AND s.split = 'train'
      AND r.query_id NOT IN (SELECT query_id FROM {{ ref('teacher_rankings') }}
                             WHERE collection = $collection AND prompt_variant = $prompt_variant
                               AND parse_error IS NOT NULL)
)
SELECT
    collection,
    prompt_variant,
    query_id,
    final_doc_ids AS ranked_doc_ids,
    count(*) AS windows,
    sum(CASE WHEN repaired THEN 1 ELSE 0 END) AS repaired_windows
FROM usable
GROUP BY collection, prompt_variant, query_id, final_doc_ids
ORDER BY query_id, ranked_doc_ids

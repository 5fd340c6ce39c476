-- Which queries train the student, which select its checkpoint and which evaluate it. With named
-- qrels splits ($train_split, $eval_split) a query's split is the qrels file that judges it; with
-- one qrels file ($train_split = '') a stable hash holds $eval_percent of the judged queries out
-- for evaluation, and every other query trains. A stable hash then sets $dev_percent of the
-- judged training queries aside as 'dev', the slice for model selection. A collection evaluated with
-- another collection's student ($student_from) has only evaluation queries; the queries of a
-- $dev_split qrels file are all dev (a collection that selects another's student). Evaluation and
-- dev queries always have qrels; queries in no split are left out.
WITH judged AS (
    SELECT query_id, any_value(split) AS qrels_split
    FROM {{ ref('qrels') }}
    WHERE collection = $collection
    GROUP BY query_id
),
assigned AS (
    SELECT
        q.collection,
        q.query_id,
        j.query_id IS NOT NULL AS judged,
        CASE
            WHEN $dev_split <> '' AND j.qrels_split = $dev_split THEN 'dev'
            WHEN $student_from <> '' THEN CASE WHEN j.query_id IS NOT NULL THEN 'eval' END
            WHEN $train_split <> '' THEN
                CASE j.qrels_split WHEN $eval_split THEN 'eval' WHEN $train_split THEN 'train' END
            WHEN j.query_id IS NOT NULL AND md5_number(q.collection || ':' || q.query_id) % 100 < $eval_percent THEN 'eval'
            ELSE 'train'
        END AS split
    FROM {{ ref('queries') }} AS q
    LEFT JOIN judged AS j ON j.query_id = q.query_id
    WHERE q.collection = $collection
)
SELECT
    collection,
    query_id,
    CASE
        WHEN split = 'train' AND judged AND $dev_split = '' AND md5_number('dev:' || collection || ':' || query_id) % 100 < $dev_percent THEN 'dev'
        ELSE split
    END AS split
FROM assigned
WHERE split IS NOT NULL
ORDER BY query_id

-- Measured speed of each student checkpoint and inference mode.
SELECT prompt_variant, stage, mode, pairs, queries, seconds, pairs_per_s, precision
FROM {{ ref('scoring_runs') }}
WHERE collection = $collection

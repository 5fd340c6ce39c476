-- Tables written by Python stages; the derived tables (splits, training tables) live in dbt_like_sql/.
CREATE TABLE IF NOT EXISTS corpus (
    collection VARCHAR NOT NULL, doc_id VARCHAR NOT NULL, title VARCHAR, text VARCHAR NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
CREATE TABLE IF NOT EXISTS queries (
    collection VARCHAR NOT NULL, query_id VARCHAR NOT NULL, text VARCHAR NOT NULL,
    PRIMARY KEY (collection, query_id)
);
CREATE TABLE IF NOT EXISTS qrels (
    collection VARCHAR NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
    relevance INTEGER NOT NULL, split VARCHAR NOT NULL, PRIMARY KEY (collection, query_id, doc_id)
);
CREATE TABLE IF NOT EXISTS first_stage_candidates (
    collection VARCHAR NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
    rank INTEGER NOT NULL, score DOUBLE NOT NULL, PRIMARY KEY (collection, query_id, doc_id)
);
CREATE TABLE IF NOT EXISTS teacher_requests (
    request_hash VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, prompt VARCHAR NOT NULL,
    params VARCHAR NOT NULL, response VARCHAR NOT NULL, prompt_tokens INTEGER,
    completion_tokens INTEGER, created_at TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS teacher_judgments (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, query_id VARCHAR NOT NULL,
    doc_id VARCHAR NOT NULL, split VARCHAR NOT NULL, label INTEGER, label_source VARCHAR NOT NULL,
    explanation VARCHAR, raw VARCHAR NOT NULL, parse_error VARCHAR, request_hash VARCHAR NOT NULL,
    model VARCHAR NOT NULL, truncated BOOLEAN NOT NULL,
    PRIMARY KEY (collection, prompt_variant, query_id, doc_id)
);
CREATE TABLE IF NOT EXISTS teacher_comparisons (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, query_id VARCHAR NOT NULL,
    doc_a VARCHAR NOT NULL, doc_b VARCHAR NOT NULL, reason VARCHAR NOT NULL, swapped BOOLEAN NOT NULL,
    preferred_doc_id VARCHAR, explanation VARCHAR, raw VARCHAR NOT NULL, parse_error VARCHAR,
    request_hash VARCHAR NOT NULL, model VARCHAR NOT NULL,
    PRIMARY KEY (collection, prompt_variant, query_id, doc_a, doc_b)
);
CREATE TABLE IF NOT EXISTS teacher_rankings (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, query_id VARCHAR NOT NULL,
    window_index INTEGER NOT NULL, start_rank INTEGER NOT NULL, input_doc_ids VARCHAR NOT NULL,
    ranked_doc_ids VARCHAR NOT NULL, final_doc_ids VARCHAR NOT NULL, explanation VARCHAR, raw VARCHAR NOT NULL,
    parse_error VARCHAR, repaired BOOLEAN NOT NULL, request_hash VARCHAR NOT NULL, model VARCHAR NOT NULL,
    PRIMARY KEY (collection, prompt_variant, query_id, window_index)
);
CREATE TABLE IF NOT EXISTS student_scores (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, checkpoint VARCHAR NOT NULL,
    stage VARCHAR NOT NULL, mode VARCHAR NOT NULL, query_id VARCHAR NOT NULL, doc_id VARCHAR NOT NULL,
    score DOUBLE NOT NULL, rank INTEGER NOT NULL, explanation VARCHAR,
    PRIMARY KEY (collection, prompt_variant, stage, mode, query_id, doc_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    collection VARCHAR NOT NULL, file VARCHAR NOT NULL, line INTEGER NOT NULL, reason VARCHAR NOT NULL,
    excerpt VARCHAR, PRIMARY KEY (collection, file, line)
);
CREATE TABLE IF NOT EXISTS injection_probe (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, query_id VARCHAR NOT NULL,
    doc_id VARCHAR NOT NULL, payload VARCHAR NOT NULL, clean_label INTEGER NOT NULL, injected_label INTEGER,
    injected_raw VARCHAR NOT NULL, model VARCHAR NOT NULL,
    PRIMARY KEY (collection, prompt_variant, query_id, doc_id)
);
CREATE TABLE IF NOT EXISTS scoring_runs (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, stage VARCHAR NOT NULL, mode VARCHAR NOT NULL,
    pairs INTEGER NOT NULL, queries INTEGER NOT NULL, seconds DOUBLE NOT NULL, pairs_per_s DOUBLE NOT NULL,
    precision VARCHAR NOT NULL, PRIMARY KEY (collection, prompt_variant, stage, mode)
);
CREATE TABLE IF NOT EXISTS teacher_quarantine (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, file VARCHAR NOT NULL, line INTEGER NOT NULL,
    reason VARCHAR NOT NULL, excerpt VARCHAR, PRIMARY KEY (collection, prompt_variant, file, line)
);
CREATE TABLE IF NOT EXISTS imported_answer_files (
    collection VARCHAR NOT NULL, prompt_variant VARCHAR NOT NULL, file VARCHAR NOT NULL, sha256 VARCHAR NOT NULL,
    models VARCHAR NOT NULL, answers INTEGER NOT NULL, quarantined_lines INTEGER NOT NULL,
    PRIMARY KEY (collection, prompt_variant, file)
);

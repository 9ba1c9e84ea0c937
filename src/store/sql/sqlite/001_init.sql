CREATE TABLE IF NOT EXISTS placeholder_removed_by_store_helper (x INTEGER);

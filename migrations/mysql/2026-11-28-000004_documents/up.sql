CREATE TABLE eb_documents (
    collection VARCHAR(64) NOT NULL,
    id VARCHAR(255) NOT NULL,
    version BIGINT NOT NULL,
    body LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (collection, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE eb_collection_schemas (
    collection VARCHAR(64) NOT NULL PRIMARY KEY,
    json_schema LONGTEXT NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

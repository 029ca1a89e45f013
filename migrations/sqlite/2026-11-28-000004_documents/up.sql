CREATE TABLE eb_documents (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (collection, id)
);

CREATE TABLE eb_collection_schemas (
    collection TEXT NOT NULL PRIMARY KEY,
    json_schema TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

DROP TABLE collection_schemas;
DROP TABLE documents;

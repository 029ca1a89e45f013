DROP TABLE eb_collection_schemas;
DROP TABLE eb_documents;

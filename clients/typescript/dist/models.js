/** The API's answers, as JSON (times are RFC 3339 strings in UTC). */
export {};

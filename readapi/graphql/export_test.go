package graphql

// Schema is the schema's text, for tests.
func Schema() []byte { return schema }

// SharedField answers whether field of typ is shared, and whether it is decided at all.
func SharedField(typ, field string) (shared, decided bool) {
	if s, ok := sharedFields[typ+"."+field]; ok {
		return s, true
	}
	shared, decided = sharedFields[typ+".*"]
	return shared, decided
}

// Package connector holds what the connectors under it share. Each
// connector provisions into one target system and lives in a subpackage
// of its own; this package imports only the access core.
package connector

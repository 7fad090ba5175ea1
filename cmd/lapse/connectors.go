package main

import (
	"github.com/lapse-access/lapse/config"
)

// tokenType is the built-in token connector's config: it takes no settings,
// on the connector or on roles.
type tokenType struct{}

func (tokenType) Settings(decode func(any) error) (any, error) {
	var s struct{}
	return nil, decode(&s)
}

func (tokenType) RoleSettings(_ any, decode func(any) error) (any, error) {
	var s struct{}
	return nil, decode(&s)
}

// connectorTypes is the table of connector types this binary knows.
func connectorTypes() map[string]config.ConnectorType {
	return map[string]config.ConnectorType{
		"token": tokenType{},
	}
}

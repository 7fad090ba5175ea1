// Package config reads lapse.yaml: it decodes strictly, reports every
// problem with its line and column, and turns the file into the plain values
// the rest of Lapse takes. Only cmd/lapse imports it.
package config

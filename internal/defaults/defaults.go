// Package defaults fills the zero fields of a configuration (STYLE.md
// habit 4: a zero Config plus defaults is a working one).
package defaults

// Set stores def in *field when *field is its type's zero value: a
// configuration's unset field takes the component's default, a set one
// stays as the caller gave it.
func Set[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

package kmod

// Exported for the external test package, which needs vmtest (itself a user
// of this package) to fetch a Debian kernel.
var (
	ModuleDepends = moduleDepends
	ModuleName    = moduleName
)

// Package lava holds kho-sim's LAVA job templates and test definition (the
// YAML files beside this one) and the tests that check their monitors
// against a real serial log of a kexec chain.
package lava

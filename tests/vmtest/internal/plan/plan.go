// Package plan is the instruction file the vmtest harness packs into a
// guest's initramfs and the guest's /init follows.
package plan

// Path is where the plan lies in the guest's root file system.
const Path = "/vmtest/plan.json"

// ResultPrefix starts the line the guest's /init prints on the serial
// console when it is done: "CAIRN-VMTEST-RESULT: exit=N", and after a
// setup failure "CAIRN-VMTEST-RESULT: exit=-1 <reason>".
const ResultPrefix = "CAIRN-VMTEST-RESULT: "

// Plan says what the guest's /init does, in order: load Modules, then run
// Command in Dir with Env, then report the exit code and power off.
type Plan struct {
	// Modules are paths of kernel module files in the guest, dependencies
	// before the modules that need them.
	Modules []string `json:"modules"`
	// Command is the program and its arguments.
	Command []string `json:"command"`
	// Dir is the working directory of Command.
	Dir string `json:"dir"`
	// Env is the complete environment of Command.
	Env []string `json:"env"`
}

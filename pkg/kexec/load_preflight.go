package kexec

import (
	"fmt"
	"os"
)

// KHOLoadPreflight returns, one line each, what would stop LoadKHO on the
// machine under root ("" means "/") with the next kernel at kernel: what
// stops every kexec (Preflight.Problems), lockdown, which forbids
// kexec_load whatever the image (security/lockdown: LOCKDOWN_KEXEC is an
// integrity reason) as it forbids /dev/mem, and a next kernel whose setup
// header the kexec_load path cannot boot. The error is for a machine state
// that cannot be read.
func KHOLoadPreflight(root, kernel string) ([]string, error) {
	p, err := ReadPreflight(root)
	if err != nil {
		return nil, err
	}
	problems := p.Problems()
	if p.Lockdown == "integrity" || p.Lockdown == "confidentiality" {
		problems = append(problems, fmt.Sprintf("kernel lockdown=%s: kexec_load(2) and /dev/mem are refused whatever the image (no signature path as for kexec_file_load); boot with lockdown=none and Secure Boot off", p.Lockdown))
	}
	if kernel != "" {
		if why := khoImageProblem(kernel); why != "" {
			problems = append(problems, why)
		}
	}
	return problems, nil
}

// khoImageProblem is why the kexec_load path cannot boot the image at
// path, or "".
func khoImageProblem(path string) string {
	image, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("next kernel: %v", err)
	}
	if _, err := readSetupHeader(path, image); err != nil {
		return err.Error()
	}
	return ""
}

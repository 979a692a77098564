package objname_test

import (
	"errors"
	"fmt"

	"github.com/greeter/greeter/service/objname"
)

func ExampleValidate() {
	for _, name := range []string{
		objname.Join("reports/2024", ".pdf"),
		"../etc/passwd",
		"invoice\u202efdp.exe",
	} {
		err := objname.Validate(name)
		var e *objname.Error
		if errors.As(err, &e) {
			fmt.Printf("%q: rejected (%s): %v\n", name, e.Rule, e)
			continue
		}
		fmt.Printf("%q: ok\n", name)
	}
	// Output:
	// "reports/2024.pdf": ok
	// "../etc/passwd": rejected (segment): name segment ".." is not allowed
	// "invoice\u202efdp.exe": rejected (format): name contains an invisible formatting character (U+202E) at byte 7
}

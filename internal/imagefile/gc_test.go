package imagefile_test

import "runtime/debug"

func debugGC(percent int) int { return debug.SetGCPercent(percent) }

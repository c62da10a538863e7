package sim

func WritePlots(dir string, rs []Result) error { return nil }

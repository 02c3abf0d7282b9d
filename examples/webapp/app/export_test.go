package app

// SetCategoryQueried makes a's category loads call f after their query,
// before they return the page (nil: no call).
func SetCategoryQueried(a *App, f func(name string)) {
	if f == nil {
		a.categoryQueried.Store(nil)
		return
	}
	a.categoryQueried.Store(&f)
}

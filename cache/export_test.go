package cache

// VisitScript is the source of the read path's visit, for the benchmark that
// measures it against its alternatives.
const VisitScript = visitSrc

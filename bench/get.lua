-- get.lua: a plain GET of the URL given to wrk (nginx's fixed body, GET /pricing).
dofile(os.getenv("BENCH_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.headers["Accept"] = "application/json"

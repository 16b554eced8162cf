from mt_bench_task.cli.main import main

raise SystemExit(main())

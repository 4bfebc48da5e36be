from bench.detection.runner import main

raise SystemExit(main())

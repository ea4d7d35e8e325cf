from charlm.cli import main

raise SystemExit(main())

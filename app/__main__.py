from app.commands.cli import main

raise SystemExit(main())

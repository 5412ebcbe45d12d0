import PTShareCLI

PTShare.main()

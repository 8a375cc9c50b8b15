from bertline.cli import console_main

console_main()

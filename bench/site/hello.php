<?php
// Workload "hello": the smallest dynamic page.
echo "Hello, world!\n";

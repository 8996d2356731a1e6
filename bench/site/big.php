<?php
// Workload "php-100k": a dynamic page of 100 KiB.
header('Content-Type: text/plain');
echo str_repeat("0123456789abcdef", 6400);
